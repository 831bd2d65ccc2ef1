#include "app/app.hpp"

int main(int argc, char** argv) {
  return parley::app::run_cli(argc, argv);
}
