// The report's paired differences (xwin pipeline, eval stage): the mean of a_i - b_i and a 95%
// interval of 1.96 standard errors, checked against the McNemar counts of the same outcomes
// (tasks only A got right, only B got right) and on the edge cases: one task, none, and
// outcome lists of different lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "app/eval_tasks.h"
#include "core/error.h"

using xwin::cli::paired_difference;
using xwin::cli::PairedDifference;

TEST(PairedDifference, MatchesMcNemarCounts) {
  // 100 tasks: 30 only A solved, 10 only B, 25 both, 35 neither.
  std::vector<bool> a, b;
  auto add = [&](int n, bool x, bool y) {
    for (int i = 0; i < n; i++) a.push_back(x), b.push_back(y);
  };
  add(30, true, false), add(25, true, true), add(10, false, true), add(35, false, false);
  const PairedDifference d = paired_difference(a, b);
  // From the counts: difference (30 - 10) / 100; the differences are +1 (30), -1 (10), 0 (60),
  // so their sample variance is (30 (1 - 0.2)^2 + 10 (-1 - 0.2)^2 + 60 (0.2)^2) / 99.
  const double var = (30 * 0.64 + 10 * 1.44 + 60 * 0.04) / 99;
  const double half = 1.96 * std::sqrt(var / 100);
  EXPECT_EQ(d.n, 100);
  EXPECT_NEAR(d.diff, 0.2, 1e-15);
  EXPECT_NEAR(d.lo, 0.2 - half, 1e-12);
  EXPECT_NEAR(d.hi, 0.2 + half, 1e-12);
  // Swapping the models mirrors the interval.
  const PairedDifference r = paired_difference(b, a);
  EXPECT_NEAR(r.diff, -0.2, 1e-15);
  EXPECT_NEAR(r.lo, -d.hi, 1e-12);
  EXPECT_NEAR(r.hi, -d.lo, 1e-12);
}

TEST(PairedDifference, IdenticalOutcomesHaveNoWidth) {
  const std::vector<bool> a = {true, false, true, true};
  const PairedDifference d = paired_difference(a, a);
  EXPECT_EQ(d.n, 4);
  EXPECT_EQ(d.diff, 0.0);
  EXPECT_EQ(d.lo, 0.0);
  EXPECT_EQ(d.hi, 0.0);
}

TEST(PairedDifference, EdgeCases) {
  const PairedDifference one = paired_difference({true}, {false});
  EXPECT_EQ(one.n, 1);
  EXPECT_EQ(one.diff, 1.0);
  EXPECT_EQ(one.lo, 1.0);
  EXPECT_EQ(one.hi, 1.0);
  const PairedDifference none = paired_difference({}, {});
  EXPECT_EQ(none.n, 0);
  EXPECT_EQ(none.diff, 0.0);
  EXPECT_THROW(paired_difference({true, false}, {true}), xwin::Error);
}
