#include "judge/judge.h"

namespace xwin {

const char* winner_name(Winner w) {
  switch (w) {
    case Winner::A:
      return "A";
    case Winner::B:
      return "B";
    case Winner::Tie:
      return "tie";
    case Winner::Failed:
      break;
  }
  return "failed";
}

}  // namespace xwin
