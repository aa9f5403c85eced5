#include "collectors/sources/poll.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "collectors/sources/prometheus_query.h"
#include "collectors/sources/text_format_parser.h"
#include "common/file_reader.h"

namespace virtscale {
namespace {

std::string Trim(std::string_view s) {
  const auto begin = s.find_first_not_of(" \t\r\n\v\f");
  if (begin == std::string_view::npos) return "";
  const auto end = s.find_last_not_of(" \t\r\n\v\f");
  return std::string(s.substr(begin, end - begin + 1));
}

// A source's value, password or token file; `error` names the path.
std::optional<std::string> ReadSourceFile(const std::string& path, std::string& error,
                                          bool strict = true) {
  auto data = ReadRegularFile(path, kMaxFileBytes, error, strict);
  if (!data) error = "cannot read " + path + ": " + error;
  return data;
}

SourceError ToSourceError(const HttpError& error) {
  switch (error.kind) {
    case HttpErrorKind::kTimeout:
      return {source_reason::kTimeout, error.message};
    case HttpErrorKind::kTooLarge:
      return {source_reason::kTooLarge, error.message};
    case HttpErrorKind::kHttpStatus:
      return {source_reason::kHttpStatus, error.message};
    case HttpErrorKind::kConnection:
    case HttpErrorKind::kCancelled:
      break;
  }
  return {source_reason::kConnection, error.message};
}

// GETs `path` on the source's origin with its credentials and TLS settings.
SourceResult<HttpClientResponse> GetFromSource(const SourceConfig& cfg, const std::string& path,
                                               const HttpClientHeaders& headers,
                                               RequestCanceller* canceller) {
  HttpRequestOptions options;
  options.timeout = cfg.timeout;
  options.canceller = canceller;
  if (cfg.basic_auth) {
    std::string password = cfg.basic_auth->password;
    if (!cfg.basic_auth->password_file.empty()) {
      std::string error;
      auto secret = ReadSourceFile(cfg.basic_auth->password_file, error);
      if (!secret) return SourceError{source_reason::kRead, "password_file: " + error};
      password = Trim(*secret);
    }
    options.basic_auth = HttpBasicAuth{cfg.basic_auth->username, password};
  }
  if (!cfg.bearer_token.empty()) options.bearer_token = cfg.bearer_token;
  if (!cfg.bearer_token_file.empty()) {
    std::string error;
    auto secret = ReadSourceFile(cfg.bearer_token_file, error);
    if (!secret) return SourceError{source_reason::kRead, "bearer_token_file: " + error};
    options.bearer_token = Trim(*secret);
  }
  options.ca_file = cfg.tls.ca_file;
  options.verify_certificate = !cfg.tls.insecure_skip_verify;
  HttpUrl url = cfg.url;
  url.path = path;
  auto answer = HttpGet(url, headers, options);
  if (!answer.ok()) return ToSourceError(answer.error());
  return std::move(answer).value();
}

SourceError HttpStatusError(const HttpClientResponse& answer) {
  return {source_reason::kHttpStatus,
          "HTTP " + std::to_string(answer.status) + " from " + answer.url};
}

bool Is2xx(int status) { return status >= 200 && status < 300; }

std::string JoinPath(const std::string& base, std::string_view tail) {
  std::string out = base;
  while (!out.empty() && out.back() == '/') out.pop_back();
  return out + std::string(tail);
}

SourceResult<double> PollPrometheus(const SourceConfig& cfg, RequestCanceller* canceller) {
  const std::string path =
      JoinPath(cfg.url.path, "/api/v1/query?query=") + PercentEncode(cfg.query);
  auto answer = GetFromSource(cfg, path, {{"Accept", "application/json"}}, canceller);
  if (!answer.ok()) return answer.error();
  auto parsed = ParsePrometheusQueryResponse(answer.value().body);
  if (Is2xx(answer.value().status)) return parsed;
  // Prometheus answers bad queries with 400/422 and a JSON error worth showing.
  if (!parsed.ok() && parsed.error().reason == source_reason::kQueryError) {
    return SourceError{source_reason::kQueryError, "HTTP " + std::to_string(answer.value().status) +
                                                       ": " + parsed.error().message};
  }
  return HttpStatusError(answer.value());
}

SourceResult<std::vector<std::pair<double, double>>> FetchPrometheusHistory(
    const SourceConfig& cfg, double end_unix, RequestCanceller* canceller) {
  SourceConfig slow = cfg;  // a month of points takes longer than an instant query
  slow.timeout = std::max<Duration>(cfg.timeout, kHistoryTimeout);
  const double start_unix = end_unix - static_cast<double>(kHistoryRange.count());
  const std::string path = JoinPath(cfg.url.path, "/api/v1/query_range?query=") +
                           PercentEncode(cfg.query) + fmt::format("&start={:.3f}", start_unix) +
                           fmt::format("&end={:.3f}", end_unix) +
                           fmt::format("&step={}", kHistoryStep.count());
  auto answer = GetFromSource(slow, path, {{"Accept", "application/json"}}, canceller);
  if (!answer.ok()) return answer.error();
  auto parsed = ParsePrometheusRangeResponse(answer.value().body);
  if (!Is2xx(answer.value().status)) {
    if (!parsed.ok() && parsed.error().reason == source_reason::kQueryError) {
      return SourceError{
          source_reason::kQueryError,
          "HTTP " + std::to_string(answer.value().status) + ": " + parsed.error().message};
    }
    return HttpStatusError(answer.value());
  }
  if (!parsed.ok()) return parsed.error();
  const std::vector<PrometheusSeries>& series = parsed.value();
  if (series.empty())
    return SourceError{source_reason::kEmptyVector, "range query returned no series"};
  if (series.size() > 1) {
    return SourceError{source_reason::kMultipleSeries,
                       fmt::format("range query returned {} series; a forecast needs one (sum() "
                                   "them in the query)",
                                   series.size())};
  }
  std::vector<std::pair<double, double>> samples;
  samples.reserve(series[0].samples.size());
  for (const auto& [t, v] : series[0].samples)
    if (std::isfinite(t) && std::isfinite(v)) samples.emplace_back(t, v);
  return samples;
}

SourceResult<double> PollScrape(const SourceConfig& cfg, RequestCanceller* canceller) {
  auto answer = GetFromSource(cfg, cfg.url.path,
                              {{"Accept", "text/plain;version=0.0.4;q=1,*/*;q=0.1"}}, canceller);
  if (!answer.ok()) return answer.error();
  if (!Is2xx(answer.value().status)) return HttpStatusError(answer.value());
  auto samples = ParseExposition(answer.value().body);
  if (!samples.ok()) {
    return SourceError{source_reason::kParse, answer.value().url + ": " + samples.error().message};
  }
  return SelectSample(samples.value(), cfg.metric, cfg.labels, cfg.sum);
}

SourceResult<double> PollFile(const SourceConfig& cfg) {
  std::string error;
  auto data = ReadSourceFile(cfg.path, error, /*strict=*/false);
  if (!data) return SourceError{source_reason::kRead, error};
  if (data->size() > kMaxFileBytes) {
    return SourceError{source_reason::kParse,
                       cfg.path + ": larger than " + std::to_string(kMaxFileBytes) + " bytes"};
  }
  const std::string text = Trim(*data);
  if (text.empty()) return SourceError{source_reason::kParse, cfg.path + ": file is empty"};
  auto value = ParsePrometheusFloat(text);
  if (!value) {
    const std::string shown = text.size() > 40 ? text.substr(0, 40) + "..." : text;
    return SourceError{source_reason::kParse, cfg.path + ": not a number: \"" + shown + "\""};
  }
  return CheckFinite(*value, cfg.path);
}

}  // namespace

SourceResult<std::vector<std::pair<double, double>>> FetchSourceHistory(
    const SourceConfig& config, double end_unix, RequestCanceller* canceller) {
  if (config.type != SourceType::kPrometheus)
    return SourceError{source_reason::kQueryError, "only a prometheus source has a history"};
  try {
    return FetchPrometheusHistory(config, end_unix, canceller);
  } catch (const std::exception& e) {  // httplib and std can throw (bad_alloc, ...)
    return SourceError{source_reason::kConnection, std::string("unexpected error: ") + e.what()};
  }
}

SourceResult<double> PollSource(const SourceConfig& config, RequestCanceller* canceller) {
  try {
    switch (config.type) {
      case SourceType::kPrometheus:
        return PollPrometheus(config, canceller);
      case SourceType::kScrape:
        return PollScrape(config, canceller);
      case SourceType::kFile:
        return PollFile(config);
    }
  } catch (const std::exception& e) {  // httplib and std can throw (bad_alloc, ...)
    return SourceError{source_reason::kConnection, std::string("unexpected error: ") + e.what()};
  }
  return SourceError{source_reason::kConnection, "unknown source type"};
}

}  // namespace virtscale
