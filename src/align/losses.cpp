#include "align/losses.h"

#include <cmath>

#include "core/error.h"

namespace xwin {

double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

double neg_log_sigmoid(double x) {
  // log(1 + exp(-x)), without overflow for large |x|.
  return x >= 0 ? std::log1p(std::exp(-x)) : -x + std::log1p(std::exp(x));
}

PairGrad bradley_terry(double rc, double rr, double margin) {
  const double z = rc - rr - margin;
  const double g = -sigmoid(-z);  // d/dz of -log sigmoid(z)
  return {neg_log_sigmoid(z), g, -g};
}

DpoLoss dpo_loss_from_string(const std::string& s) {
  if (s == "sigmoid") return DpoLoss::Sigmoid;
  if (s == "ipo") return DpoLoss::Ipo;
  if (s == "hinge") return DpoLoss::Hinge;
  fail("unknown DPO loss '", s, "'; choose sigmoid, ipo or hinge");
}

PairGrad dpo(DpoLoss kind, double beta, double pc, double pr, double rc, double rr) {
  const double h = (pc - rc) - (pr - rr);
  double loss = 0, dh = 0;
  switch (kind) {
    case DpoLoss::Sigmoid:
      loss = neg_log_sigmoid(beta * h);
      dh = -beta * sigmoid(-beta * h);
      break;
    case DpoLoss::Ipo: {
      const double d = h - 1.0 / (2.0 * beta);
      loss = d * d;
      dh = 2.0 * d;
      break;
    }
    case DpoLoss::Hinge:
      loss = std::max(0.0, 1.0 - beta * h);
      dh = loss > 0 ? -beta : 0.0;
      break;
  }
  return {loss, dh, -dh};
}

}  // namespace xwin
