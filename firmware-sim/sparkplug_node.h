/* sparkplug_node.h - the simulator as a Sparkplug B edge node: topics, births, data, deaths and the rebirth command, encoded with protobuf-c. */
/* SPDX-License-Identifier: Apache-2.0 */
#ifndef TG_SIM_SPARKPLUG_NODE_H
#define TG_SIM_SPARKPLUG_NODE_H

#include <stddef.h>
#include <stdint.h>

/*
 * One edge node (Eclipse Sparkplug 3.0, ISO/IEC 20237:2023) with devices
 * 0 .. ndevices-1, each with the same numeric metrics (the simulator's
 * fields). What it sends, in the order the specification asks:
 *
 *   NBIRTH  seq 0; metrics "bdSeq" (Int64) and "Node Control/Rebirth"
 *           (Boolean false), no alias
 *   DBIRTH  per device: every metric by name, with its alias and datatype
 *           (Double, or Float for the fields marked so) and its current
 *           value, or is_null when the device has no reading to give yet
 *   DDATA   aliases only, no name and no datatype (the specification's
 *           advice: a host resolves both from the DBIRTH), each metric with
 *           its own timestamp
 *   NDEATH  the bdSeq of the session and no seq; the same bytes are the
 *           MQTT will
 *
 * seq counts every message of the node but NDEATH, 0..255 and round again,
 * and restarts at 0 with each NBIRTH. Aliases are unique over the whole
 * node: device d's field f is 1 + d * nfields + f.
 *
 * The module is the publishing thread's alone, and allocates only in
 * sim_spn_new() (and in sim_spn_is_rebirth(), which unpacks a command on
 * the MQTT thread: rare, and nothing of the node's is touched).
 */

#define SIM_SPN_FIELDS_MAX 3
/** The metric a host sets to true to ask for every birth again. */
#define SIM_SPN_REBIRTH "Node Control/Rebirth"
/** Bytes enough for any payload of the node (3 metrics per device). */
#define SIM_SPN_PAYLOAD_MAX 512

typedef struct sim_spn sim_spn_t;

/** The message types of a node's topics (spBv1.0/G/<TYPE>/N[/D]). */
enum sim_spn_type { SIM_SPN_NBIRTH, SIM_SPN_NDEATH, SIM_SPN_NCMD, SIM_SPN_DBIRTH, SIM_SPN_DDATA };

/**
 * @brief An edge node @p node of group @p group, in session @p bdseq, whose
 *        devices have the @p nfields metrics named @p names; @p is_float[f]
 *        makes metric f a Float (else a Double). The strings must outlive
 *        the node.
 * @return NULL when out of memory.
 */
sim_spn_t *sim_spn_new(const char *group, const char *node, uint64_t bdseq, unsigned nfields,
                       const char *const *names, const int *is_float);

/** @brief Free; NULL is accepted. */
void sim_spn_destroy(sim_spn_t *n);

/** @brief The session's bdSeq. */
uint64_t sim_spn_bdseq(const sim_spn_t *n);

/**
 * @brief The topic of a message of @p type, for @p device (NULL for the
 *        node's own types) into @p buf.
 * @return its length, or 0 when it does not fit @p cap.
 */
size_t sim_spn_topic(const sim_spn_t *n, enum sim_spn_type type, const char *device, char *buf,
                     size_t cap);

/** @brief @p v as the wire carries metric @p f (rounded to a float for a Float). */
double sim_spn_wire_value(const sim_spn_t *n, unsigned f, double v);

/**
 * @brief The NBIRTH stamped @p ts_ms, into @p buf; seq restarts at 0.
 * @return its length, or 0 when it does not fit @p cap.
 */
size_t sim_spn_nbirth(sim_spn_t *n, int64_t ts_ms, uint8_t *buf, size_t cap);

/** @brief The NDEATH (also the will) stamped @p ts_ms. @return as sim_spn_nbirth(). */
size_t sim_spn_ndeath(const sim_spn_t *n, int64_t ts_ms, uint8_t *buf, size_t cap);

/**
 * @brief Device @p dev's DBIRTH stamped @p ts_ms, with the values @p v
 *        (nfields of them; NULL: every metric is_null). Takes the next seq.
 * @return as sim_spn_nbirth().
 */
size_t sim_spn_dbirth(sim_spn_t *n, unsigned dev, int64_t ts_ms, const double *v, uint8_t *buf,
                      size_t cap);

/**
 * @brief Device @p dev's DDATA: the values @p v taken at @p ts_ms, by alias.
 *        Takes the next seq. @return as sim_spn_nbirth().
 */
size_t sim_spn_ddata(sim_spn_t *n, unsigned dev, int64_t ts_ms, const double *v, uint8_t *buf,
                     size_t cap);

/**
 * @brief Device @p dev's DDATA of one Double metric whose alias no birth
 *        gave (the simulator's sparkplug_unknown_alias garbage). Takes the
 *        next seq. @return as sim_spn_nbirth().
 */
size_t sim_spn_ddata_unknown_alias(sim_spn_t *n, unsigned dev, int64_t ts_ms, uint8_t *buf,
                                   size_t cap);

/**
 * @brief Whether the NCMD payload @p payload asks for a rebirth
 *        ("Node Control/Rebirth" true).
 * @return 1 if it does, 0 if not, -EBADMSG when it is no Sparkplug B payload.
 */
int sim_spn_is_rebirth(const void *payload, size_t len);

/**
 * @brief The bdSeq of a new session: the one kept in @p path plus one,
 *        modulo 256 (0 when the file does not exist yet), written back; with
 *        @p path NULL, the wall clock's seconds modulo 256.
 * @return 0, or -errno when the file cannot be read or written.
 */
int sim_spn_bdseq_next(const char *path, uint64_t *out);

#endif
