#pragma once
// Test helper: the typed-parameter arrays libvirt hands the collectors
// (bulk-stats records, job stats), built key by key.
#include <libvirt/libvirt.h>

#include <cstring>
#include <string>
#include <vector>

namespace virtscale {

// Builds the typed-parameter array one bulk-stats record carries.
class Params {
 public:
  Params& U(const std::string& key, unsigned long long v) {
    virTypedParameter& p = Next(key);
    p.type = VIR_TYPED_PARAM_ULLONG;
    p.value.ul = v;
    return *this;
  }
  Params& I(const std::string& key, int v) {
    virTypedParameter& p = Next(key);
    p.type = VIR_TYPED_PARAM_INT;
    p.value.i = v;
    return *this;
  }
  Params& S(const std::string& key, const char* v) {
    virTypedParameter& p = Next(key);
    p.type = VIR_TYPED_PARAM_STRING;
    p.value.s = const_cast<char*>(v);
    return *this;
  }
  Params& L(const std::string& key, long long v) {
    virTypedParameter& p = Next(key);
    p.type = VIR_TYPED_PARAM_LLONG;
    p.value.l = v;
    return *this;
  }
  const virTypedParameter* data() const { return params_.data(); }
  int size() const { return static_cast<int>(params_.size()); }

 private:
  virTypedParameter& Next(const std::string& key) {
    virTypedParameter p{};
    std::strncpy(p.field, key.c_str(), VIR_TYPED_PARAM_FIELD_LENGTH - 1);
    params_.push_back(p);
    return params_.back();
  }
  std::vector<virTypedParameter> params_;
};

}  // namespace virtscale
