/*
 * callbacks.h - the libmilter callbacks (callbacks.c): what main.c needs
 * to register and drain them.  Only milter/ includes libmilter; src/
 * knows nothing of it.
 */
#ifndef MT_CALLBACKS_H
#define MT_CALLBACKS_H

#include <stdbool.h>

/* The libmilter callbacks (callbacks.c). */
struct smfiDesc;
const struct smfiDesc *mt_milter_desc(void);

/* Connections currently open (for a bounded drain at exit). */
unsigned mt_active_connections(void);

/* Tell the callbacks that the milter socket opened at start is a
 * unix-domain socket (MAIL without reply and no DATA step are negotiated
 * only there). */
void mt_milter_set_local_socket(bool local);

#endif
