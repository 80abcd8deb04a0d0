/*
 * probes.h - the daemon's MX prober (engine/prober.h): started with the
 * engine when there is a decision log to write its records to and a mode
 * to probe; the milter and the socketmap note every policy answer they
 * use.  Probe* keys are read at start (a reload does not change them).
 */
#ifndef MT_PROBES_H
#define MT_PROBES_H

#include "base/status.h"
#include "conf/config.h"
#include "engine/engine.h"

/* Start the prober (after privileges are dropped); STS_OK and nothing
 * started when DecisionLog is unset or no mode is probed. */
sts_status mt_probes_start(const sts_config *cfg, sts_why *why) STS_MUST_CHECK;

/* Mail for domain goes out under answer a: note its MX hosts when the
 * policy's mode is probed.  Cheap, never waits for the network; any
 * thread, including the engine's loop (an asynchronous lookup's callback). */
void mt_probes_note(const char *domain, const sts_answer *a);

/* Stop and free the prober (before the decision log closes). */
void mt_probes_stop(void);

#endif
