// AlpacaEval's files in its own formats, every field kept (so reading and writing round-trips):
//   model_outputs.json: [{"instruction", "output", "generator", "dataset", ...}]
//   annotations:        [{"instruction", "output_1", "generator_1", "output_2", "generator_2",
//                         "dataset", "annotator", "preference", ...}]
// preference: 1 = output_1 (the reference) wins, 2 = output_2 (the model) wins, 0 or 1.5 = a
// draw, null = no verdict. The win rate is AlpacaEval's: mean of (preference - 1) over the
// annotated examples, draws counting one half, with the standard error of that mean, x 100.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "judge/judge.h"

namespace xwin {

// A JSON array file of objects; errors name the file (and element).
std::vector<nlohmann::json> read_json_records(const std::string& path, const char* what);
// Writes a JSON array (2-space indent, UTF-8 as is) to PATH.tmp and renames it.
void write_json_records(const std::string& path, const std::vector<nlohmann::json>& records);

// model_outputs.json: checks "instruction" and "output" are strings.
std::vector<nlohmann::json> read_model_outputs(const std::string& path);
// Annotations: checks output_1, output_2 and preference (number or null).
std::vector<nlohmann::json> read_annotations(const std::string& path);

// An annotation record comparing a reference output (output_1) with a model's (output_2).
nlohmann::json annotation(const nlohmann::json& reference, const nlohmann::json& model_output,
                          const std::string& annotator, Winner model_vs_reference);
// preference of an annotation; NaN when it has none.
double preference_of(const nlohmann::json& annotation);

struct WinRate {
  double win_rate = 0, standard_error = 0;  // percent
  int64_t n_wins = 0, n_wins_base = 0, n_draws = 0, n_total = 0, n_missing = 0;
};
WinRate win_rate(const std::vector<double>& preferences);

}  // namespace xwin
