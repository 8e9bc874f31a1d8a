/*
 * The only interface between the Rust plugin library and its C++ shim. Plain C: the shim's
 * C++ classes never cross this line.
 *
 * The GCS_SIZEOF_* values are the sizes the Rust-side declarations must have. The shim checks
 * them against the server's own headers (static_assert), and build.rs hands the same values to
 * Rust, which checks its #[repr(C)] structs against them. A server whose structs differ fails
 * the build, not the INSTALL PLUGIN.
 */
#ifndef MYSQL_GCS_H
#define MYSQL_GCS_H

#ifdef __cplusplus
extern "C" {
#endif

#define GCS_SIZEOF_ST_MYSQL_PLUGIN 104
#define GCS_SIZEOF_ST_MARIA_PLUGIN 104
#define GCS_SIZEOF_ST_MYSQL_SHOW_VAR 24
#define GCS_SIZEOF_SYSVAR_STR 56
#define GCS_SIZEOF_SYSVAR_UINT 64
#define GCS_SIZEOF_SYSVAR_ENUM 64
#define GCS_SIZEOF_TYPELIB 32
/* Our own struct, which both sides declare: the shim and Rust check theirs against this. */
#define GCS_SIZEOF_GCS_VALUE 24

/* The columns of INFORMATION_SCHEMA.ISIS2IS (GCS_ISIS2IS_COLUMNS, GCS_ISIS2IS_COLUMN_COUNT),
   written by build.rs from the one column list, isis2d::table::Column. */
#include "isis2is_columns.h"
/* The same for INFORMATION_SCHEMA.ISIS2IS_HISTORY (isis2d::history::HistoryColumn). */
#include "isis2is_history_columns.h"

/* One value of a row: SQL NULL if is_null; else, in a TEXT column, n bytes at ptr (not
   NUL-terminated), in a UINT column the number n. */
typedef struct gcs_value {
  const char *ptr;
  unsigned long long n;
  int is_null;
} gcs_value;

/* One row of INFORMATION_SCHEMA.ISIS2IS, a value per column in table order, valid only during
   the emit call. ascii is non-zero when every text of the row is 7-bit ASCII, which the shim
   may then copy without a character-set check. */
typedef struct gcs_row {
  gcs_value cols[GCS_ISIS2IS_COLUMN_COUNT];
  int ascii;
} gcs_row;

/* Stores one row; returns non-zero to stop (the server could not store it). */
typedef int (*gcs_emit_fn)(void *ctx, const gcs_row *row);
/* Stores one row of ISIS2IS_HISTORY: GCS_ISIS2IS_HISTORY_COLUMN_COUNT values in table order,
   valid only during the call; returns non-zero to stop. */
typedef int (*gcs_emit_values_fn)(void *ctx, const gcs_value *cols);

/* Log levels for gcs_shim_log. */
#define GCS_LOG_NOTE 0
#define GCS_LOG_WARNING 1
#define GCS_LOG_ERROR 2

/* ---- implemented by the C++ shim (server internals) ---- */

/* INFORMATION_SCHEMA plugin init: fills in the ST_SCHEMA_TABLE the server passes. */
int gcs_shim_isis2is_init(void *schema_table);
/* The same for INFORMATION_SCHEMA.ISIS2IS_HISTORY. */
int gcs_shim_isis2is_history_init(void *schema_table);
/* This server's TCP port (0 if it listens on no port). */
unsigned int gcs_shim_server_port(void);
/* This server's host name as it reports itself. */
const char *gcs_shim_server_host(void);
/* Non-zero once the server accepts connections. */
int gcs_shim_server_started(void);
/* One line in the server's error log, through the server's error-log service. */
void gcs_shim_log(int level, const char *message);

/* ---- implemented in Rust ---- */

/* Emits the current ISIS2IS rows from the cached serverlist. No I/O, no waiting. Returns the
   first non-zero result of emit, else 0. */
int gcs_isis2is_rows(void *ctx, gcs_emit_fn emit);
/* Emits the current ISIS2IS_HISTORY rows from the cached history. No I/O, no waiting. */
int gcs_isis2is_history_rows(void *ctx, gcs_emit_values_fn emit);

#ifdef __cplusplus
}
#endif

#endif
