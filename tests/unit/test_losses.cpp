// Preference losses against closed-form values computed by hand.
#include <gtest/gtest.h>

#include <cmath>

#include "align/losses.h"

using namespace xwin;

TEST(DpoLoss, SigmoidMatchesTheIssueExample) {
  // Policy chosen/rejected, reference chosen/rejected; beta 0.1 gives beta*h = 0, 1, 2.
  const double pc[] = {-0.5, -10, -1}, pr[] = {-0.1, -30, -21};
  const double rc[] = {-0.5, -10.1, -0.1}, rr[] = {-0.1, -20.1, -0.1};
  const double want[] = {0.6931, 0.3133, 0.1269};
  for (int i = 0; i < 3; i++) {
    PairGrad g = dpo(DpoLoss::Sigmoid, 0.1, pc[i], pr[i], rc[i], rr[i]);
    EXPECT_NEAR(g.loss, want[i], 5e-5) << i;
    const double z = 0.1 * ((pc[i] - rc[i]) - (pr[i] - rr[i]));
    EXPECT_NEAR(g.d_chosen, -0.1 / (1 + std::exp(z)), 1e-12);
    EXPECT_DOUBLE_EQ(g.d_rejected, -g.d_chosen);
  }
}

TEST(DpoLoss, IpoAndHinge) {
  // h = (pc - rc) - (pr - rr) = (-1 - -2) - (-3 - -1) = 1 - (-2) = 3.
  PairGrad ipo = dpo(DpoLoss::Ipo, 0.25, -1, -3, -2, -1);
  EXPECT_DOUBLE_EQ(ipo.loss, 1.0);  // (3 - 1/(2*0.25))^2 = (3 - 2)^2
  EXPECT_DOUBLE_EQ(ipo.d_chosen, 2.0);
  PairGrad hinge = dpo(DpoLoss::Hinge, 0.25, -1, -3, -2, -1);
  EXPECT_DOUBLE_EQ(hinge.loss, 0.25);  // 1 - 0.75
  EXPECT_DOUBLE_EQ(hinge.d_chosen, -0.25);
  PairGrad flat = dpo(DpoLoss::Hinge, 1.0, -1, -3, -2, -1);  // 1 - 3 < 0
  EXPECT_DOUBLE_EQ(flat.loss, 0.0);
  EXPECT_DOUBLE_EQ(flat.d_chosen, 0.0);
}

TEST(BradleyTerry, HandComputedCases) {
  PairGrad even = bradley_terry(1.5, 1.5);
  EXPECT_NEAR(even.loss, std::log(2.0), 1e-15);
  EXPECT_NEAR(even.d_chosen, -0.5, 1e-15);
  PairGrad good = bradley_terry(2.0, 0.0);  // -log sigmoid(2) = log(1 + e^-2)
  EXPECT_NEAR(good.loss, 0.1269280110429725, 1e-15);
  EXPECT_NEAR(good.d_chosen, -1 / (1 + std::exp(2.0)), 1e-15);
  PairGrad margin = bradley_terry(2.0, 0.0, 2.0);  // margin cancels the gap
  EXPECT_NEAR(margin.loss, std::log(2.0), 1e-15);
  PairGrad far = bradley_terry(-800, 0);  // no overflow
  EXPECT_NEAR(far.loss, 800, 1e-9);
  EXPECT_NEAR(far.d_chosen, -1, 1e-12);
}
