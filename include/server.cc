// What the Rust side needs to know about the running MariaDB server, and the error log.
#include <my_global.h>
#include <my_sys.h>
#include <mysqld.h>
#include <mysqld_error.h>
#include <mysql/plugin.h>
#include <netdb.h>
#include <stdlib.h>

#include "mysql_gcs.h"

// The Rust declarations mirror these server structs; their sizes must agree.
static_assert(sizeof(st_mysql_plugin) == GCS_SIZEOF_ST_MYSQL_PLUGIN, "st_mysql_plugin size");
static_assert(sizeof(st_maria_plugin) == GCS_SIZEOF_ST_MARIA_PLUGIN, "st_maria_plugin size");
static_assert(sizeof(st_mysql_show_var) == GCS_SIZEOF_ST_MYSQL_SHOW_VAR, "st_mysql_show_var size");
static_assert(sizeof(TYPELIB) == GCS_SIZEOF_TYPELIB, "TYPELIB size");
namespace sysvar_sizes {
extern DECLARE_MYSQL_SYSVAR_BASIC(str, char *);
extern DECLARE_MYSQL_SYSVAR_SIMPLE(uint, unsigned int);
extern DECLARE_MYSQL_SYSVAR_TYPELIB(enm, unsigned long);
static_assert(sizeof(MYSQL_SYSVAR_NAME(str)) == GCS_SIZEOF_SYSVAR_STR, "string sysvar size");
static_assert(sizeof(MYSQL_SYSVAR_NAME(uint)) == GCS_SIZEOF_SYSVAR_UINT, "uint sysvar size");
static_assert(sizeof(MYSQL_SYSVAR_NAME(enm)) == GCS_SIZEOF_SYSVAR_ENUM, "enum sysvar size");
}  // namespace sysvar_sizes

// The TCP port this server listens on. A server whose options name no port picks its default
// only when it opens its sockets, after the plugins loaded at startup were initialized; until
// then this is the port it will pick, the way it picks it: MYSQL_TCP_PORT from the
// environment, else (for a build without a fixed default) the "mysql" service, else
// MYSQL_PORT. 0 when the server takes no TCP connections at all.
extern "C" unsigned int gcs_shim_server_port(void) {
  if (mysqld_port != 0 || opt_disable_networking) return mysqld_port;
  if (const char *env = getenv("MYSQL_TCP_PORT")) {
    int port = atoi(env);
    if (port > 0 && port < 65536) return (unsigned int)port;
  }
#if MYSQL_PORT_DEFAULT == 0
  if (const struct servent *service = getservbyname("mysql", "tcp"))
    return ntohs((unsigned short)service->s_port);
#endif
  return MYSQL_PORT;
}

extern "C" const char *gcs_shim_server_host(void) { return glob_hostname; }

extern "C" int gcs_shim_server_started(void) { return mysqld_server_started; }

extern "C" void gcs_shim_log(int level, const char *message) {
  unsigned long flags = ME_ERROR_LOG_ONLY;
  if (level == GCS_LOG_NOTE) flags |= ME_NOTE;
  if (level == GCS_LOG_WARNING) flags |= ME_WARNING;
  my_printf_error(ER_UNKNOWN_ERROR, "isis2d: %s", MYF(flags), message);
}
