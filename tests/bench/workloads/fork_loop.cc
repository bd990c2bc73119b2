// bench_fork_loop: fork() throughput for the fork benchmark (tests/bench/bench.py).
//
//   bench_fork_loop N [_exit|exit]
//
// Does N times: fork(); the child ends at once (_exit(0), the default, or
// exit(0), which also runs atexit handlers and library destructors); the
// parent waitpid()s for it. A profiled parent pays its fork hooks, and every
// child starts with the capture library's child set-up; a child that ends at
// once is the worst case for a per-child cost.
//
// Prints one JSON line on stdout: {"forks": N, "mode": "...", "elapsed_s": S,
// "us_per_fork": U} (CLOCK_MONOTONIC around the loop only, so the program's
// own start-up and exit are not in it). Exit status 1 if a fork or a child
// failed.
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

double Now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s N [_exit|exit]\n", argv[0]);
    return 2;
  }
  long n = atol(argv[1]);
  bool full_exit = argc > 2 && strcmp(argv[2], "exit") == 0;
  if (n < 1) return 2;
  int failed = 0;
  double t0 = Now();
  for (long i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      if (full_exit) exit(0);
      _exit(0);
    }
    if (pid < 0) {
      fprintf(stderr, "bench_fork_loop: fork: %s\n", strerror(errno));
      return 1;
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
  }
  double elapsed = Now() - t0;
  printf("{\"forks\": %ld, \"mode\": \"%s\", \"elapsed_s\": %.6f, \"us_per_fork\": %.2f, "
         "\"failed\": %d}\n",
         n, full_exit ? "exit" : "_exit", elapsed, elapsed * 1e6 / static_cast<double>(n),
         failed);
  return failed ? 1 : 0;
}
