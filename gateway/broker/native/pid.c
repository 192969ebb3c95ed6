/* getpid(2), answered from memory for the whole process.
 *
 * libzmq checks for a fork on every signal between its threads: each mailbox wait,
 * signal and read in signaler.cpp compares the saved pid with getpid(). glibc stopped
 * caching the pid in 2.25, so every check is a system call. On the wsgi path that is
 * about 15 per request, a third of all the broker's system calls. The broker never forks,
 * so its pid never changes. This definition is in the executable, so it takes precedence
 * over libc's for libzmq's calls (ELF symbol interposition: the linker exports it
 * because libzmq refers to it). A child of a fork would get its parent's pid from it.
 * libzmq forbids using its sockets in such a child anyway, and that child would have to
 * exec at once.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>
#include <unistd.h>

pid_t getpid(void)
{
    /* Every thread computes the same value, so a race between two first calls is
     * harmless. The atomics only keep the compiler from tearing the load or store. */
    static pid_t pid;
    pid_t p = __atomic_load_n(&pid, __ATOMIC_RELAXED);
    if (p == 0) {
        p = (pid_t)syscall(SYS_getpid);
        __atomic_store_n(&pid, p, __ATOMIC_RELAXED);
    }
    return p;
}
