// The preference losses of Xwin-LM, as plain functions of scalars (rewards, log-prob sums) with
// their derivatives; the objectives turn the derivatives into per-token head gradients.
#pragma once
#include <string>

namespace xwin {

struct PairGrad {
  double loss, d_chosen, d_rejected;
};

// Bradley-Terry reward-model loss: -log sigmoid(r_chosen - r_rejected - margin).
PairGrad bradley_terry(double r_chosen, double r_rejected, double margin = 0.0);

enum class DpoLoss { Sigmoid, Ipo, Hinge };
DpoLoss dpo_loss_from_string(const std::string& s);  // "sigmoid", "ipo", "hinge"

// DPO family on log-prob sums of policy (pc, pr) and reference (rc, rr), with
// h = (pc - rc) - (pr - rr):
//   sigmoid: -log sigmoid(beta h)          (Rafailov et al.)
//   ipo:     (h - 1 / (2 beta))^2           (Azar et al.)
//   hinge:   max(0, 1 - beta h)             (SLiC)
// Derivatives are with respect to pc and pr.
PairGrad dpo(DpoLoss kind, double beta, double pc, double pr, double rc, double rr);

// Numerically stable -log sigmoid(x) and sigmoid(x).
double neg_log_sigmoid(double x);
double sigmoid(double x);

}  // namespace xwin
