#pragma once
// A value or an error, for failures the program expects (a server that does
// not answer, a bad document): the StatusOr pattern, checked with ok().
//
//   Result<double, SourceError> r = Parse(body);
//   if (!r.ok()) return r.error();
//   Use(r.value());
#include <utility>
#include <variant>

namespace virtscale {

template <typename T, typename E>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(E error) : v_(std::move(error)) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const E& error() const { return std::get<E>(v_); }

 private:
  std::variant<T, E> v_;
};

}  // namespace virtscale
