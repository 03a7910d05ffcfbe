/* The pod sandbox's process: sleeps until SIGTERM or SIGINT, reaps
 * children. Built with gcc -static into a FROM-scratch image by up.sh
 * (no registry is reachable to pull registry.k8s.io/pause). */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }
static void reap(int sig) { (void)sig; while (waitpid(-1, 0, WNOHANG) > 0) {} }

int main(void) {
	signal(SIGTERM, quit);
	signal(SIGINT, quit);
	signal(SIGCHLD, reap);
	for (;;) pause();
}
