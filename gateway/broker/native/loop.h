/* The broker's event loop (loop.c). */
#ifndef MDB_LOOP_H
#define MDB_LOOP_H

#include <signal.h>

#include "broker.h"

/* Serve b's ROUTER until *stopping is set (or poll(2) fails); monitor is the PAIR that
 * receives the ROUTER's DISCONNECTED events. */
void broker_run(broker *b, void *monitor, volatile sig_atomic_t *stopping);

#endif
