#include "judge/alpaca_eval.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace xwin {

using nlohmann::json;

std::vector<json> read_json_records(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  require(in.good(), path, ": cannot open the ", what);
  std::stringstream ss;
  ss << in.rdbuf();
  json j;
  try {
    j = json::parse(ss.str());
  } catch (const json::exception& e) {
    fail(path, ": not JSON (", e.what(), "); AlpacaEval's ", what, " is one JSON array");
  }
  require(j.is_array(), path, ": the ", what, " must be a JSON array of objects, not a ",
          j.type_name());
  std::vector<json> out;
  for (size_t i = 0; i < j.size(); i++) {
    require(j[i].is_object(), path, ": element ", i, " is not an object");
    out.push_back(std::move(j[i]));
  }
  return out;
}

void write_json_records(const std::string& path, const std::vector<json>& records) {
  const std::string tmp = path + ".tmp";
  if (const auto dir = std::filesystem::path(path).parent_path(); !dir.empty())
    std::filesystem::create_directories(dir);
  {
    std::ofstream out(tmp, std::ios::binary);
    require(out.good(), tmp, ": cannot write");
    out << json(records).dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    out.close();
    require(out.good(), tmp, ": write failed (disk full?)");
  }
  std::filesystem::rename(tmp, path);
}

static void need_string(const json& r, const char* key, const std::string& path, size_t i) {
  require(r.contains(key) && r[key].is_string(), path, ": element ", i, " has no string \"", key,
          "\"");
}

std::vector<json> read_model_outputs(const std::string& path) {
  std::vector<json> r = read_json_records(path, "model outputs");
  for (size_t i = 0; i < r.size(); i++) {
    need_string(r[i], "instruction", path, i);
    need_string(r[i], "output", path, i);
  }
  return r;
}

std::vector<json> read_annotations(const std::string& path) {
  std::vector<json> r = read_json_records(path, "annotations");
  for (size_t i = 0; i < r.size(); i++) {
    need_string(r[i], "output_1", path, i);
    need_string(r[i], "output_2", path, i);
    const json p = r[i].value("preference", json());
    require(p.is_null() || p.is_number(), path, ": element ", i,
            ": \"preference\" must be a number or null");
  }
  return r;
}

json annotation(const json& reference, const json& model_output, const std::string& annotator,
                Winner w) {
  json a = {{"instruction", reference.at("instruction")},
            {"output_1", reference.at("output")},
            {"generator_1", reference.value("generator", "reference")},
            {"dataset", reference.value("dataset", "")},
            {"output_2", model_output.at("output")},
            {"generator_2", model_output.value("generator", "model")},
            {"annotator", annotator}};
  switch (w) {
    case Winner::A:
      a["preference"] = 1;
      break;
    case Winner::B:
      a["preference"] = 2;
      break;
    case Winner::Tie:
      a["preference"] = 1.5;
      break;
    case Winner::Failed:
      a["preference"] = nullptr;
      break;
  }
  return a;
}

double preference_of(const json& a) {
  const json p = a.value("preference", json());
  return p.is_number() ? p.get<double>() : std::numeric_limits<double>::quiet_NaN();
}

WinRate win_rate(const std::vector<double>& prefs) {
  WinRate w;
  std::vector<double> x;
  for (double p : prefs) {
    if (p == 0) p = 1.5;  // AlpacaEval's older encoding of a draw
    if (p != 1 && p != 1.5 && p != 2) {
      w.n_missing++;
      continue;
    }
    x.push_back(p - 1);
    w.n_wins += p == 2, w.n_wins_base += p == 1, w.n_draws += p == 1.5;
  }
  w.n_total = (int64_t)x.size();
  if (x.empty()) return w;
  double mean = 0, var = 0;
  for (double v : x) mean += v;
  mean /= x.size();
  for (double v : x) var += (v - mean) * (v - mean);
  w.win_rate = 100 * mean;
  w.standard_error = x.size() > 1 ? 100 * std::sqrt(var / (x.size() - 1) / x.size()) : 0.0;
  return w;
}

}  // namespace xwin
