// INFORMATION_SCHEMA.ISIS2IS for MariaDB: the table's columns and its fill function. The rows
// come from the Rust side's cached serverlist (gcs_isis2is_rows): no network I/O here.
#include <my_global.h>
#include <sql_class.h>
#include <table.h>
#include <field.h>
#include <sql_show.h>
#include <mysql/plugin.h>

#include <algorithm>

#include "mysql_gcs.h"

namespace Show {
// The first nine columns are the Isis2 contract, in this order; extensions go after them.
static ST_FIELD_INFO isis2is_fields[] = {
    Column("ERROR", Varchar(255), NULLABLE),
    Column("ERRNO", ULong(), NOT_NULL),
    Column("ISIS2_MEMBER", Varchar(64), NULLABLE),
    Column("MYSQL_HOST", Varchar(255), NULLABLE),
    Column("MYSQL_PORT_OR_SOCKET", Varchar(255), NULLABLE),
    Column("MYSQL_STATUS", Varchar(16), NULLABLE),
    Column("MYSQL_ROLE", Varchar(16), NULLABLE),
    Column("MYSQL_HEARTBEAT_TTL", ULong(), NULLABLE),
    Column("MYSQL_HEARTBEAT_LAST", Varchar(32), NULLABLE),
    CEnd()};
}  // namespace Show

namespace {

enum Col { ERROR, ERRNUM, MEMBER, HOST, PORT, STATUS, ROLE, TTL, LAST };

static_assert(sizeof(gcs_text) == GCS_SIZEOF_GCS_TEXT, "gcs_text size");
static_assert(sizeof(gcs_row) == GCS_SIZEOF_GCS_ROW, "gcs_row size");

struct FillContext {
  THD *thd;
  TABLE *table;
};

// Stores a text value. ASCII goes straight into the VARCHAR's record bytes (length prefix, then
// the bytes, cut at the column's length in characters), which is what Field::store would write
// after checking the characters; that check was nearly half of the fill function's cost, and
// ASCII cannot fail it. Anything else goes through Field::store, which checks and converts.
void store_text(TABLE *table, Col col, gcs_text text, bool ascii) {
  Field *f = table->field[col];
  if (!text.ptr) {
    f->set_null();
    return;
  }
  f->set_notnull();
  if (!ascii || f->real_type() != MYSQL_TYPE_VARCHAR) {
    f->store(text.ptr, text.len, system_charset_info);
    return;
  }
  Field_varstring *v = static_cast<Field_varstring *>(f);
  size_t len = std::min<size_t>(text.len, f->char_length());
  if (v->length_bytes == 1)
    f->ptr[0] = static_cast<uchar>(len);
  else
    int2store(f->ptr, static_cast<uint16>(len));
  memcpy(f->ptr + v->length_bytes, text.ptr, len);
}

// Every column is set on every row, so the record is reset once per fill, not once per row
// (the reset copies the whole record, about 2.7 KB).
extern "C" int emit_row(void *ctx, const gcs_row *row) {
  FillContext *fill = static_cast<FillContext *>(ctx);
  TABLE *table = fill->table;
  bool ascii = row->ascii != 0;
  store_text(table, ERROR, row->error, ascii);
  table->field[ERRNUM]->store(static_cast<longlong>(row->errnum), true);
  store_text(table, MEMBER, row->member, ascii);
  store_text(table, HOST, row->host, ascii);
  store_text(table, PORT, row->port, ascii);
  store_text(table, STATUS, row->status, ascii);
  store_text(table, ROLE, row->role, ascii);
  if (row->ttl < 0) {
    table->field[TTL]->set_null();
  } else {
    table->field[TTL]->store(row->ttl, true);
    table->field[TTL]->set_notnull();
  }
  store_text(table, LAST, row->last_update, ascii);
  return schema_table_store_record(fill->thd, table) ? 1 : 0;
}

// Readable by every user, like INFORMATION_SCHEMA.ENGINES: the point of the table is that any
// client (a driver, a load balancer) learns the cluster's shape with plain SQL, and it shows
// nothing a client connected to the cluster cannot already reach.
int isis2is_fill(THD *thd, TABLE_LIST *tables, COND *) {
  FillContext ctx{thd, tables->table};
  restore_record(ctx.table, s->default_values);
  return gcs_isis2is_rows(&ctx, emit_row);
}

}  // namespace

extern "C" int gcs_shim_isis2is_init(void *p) {
  ST_SCHEMA_TABLE *schema = static_cast<ST_SCHEMA_TABLE *>(p);
  schema->fields_info = Show::isis2is_fields;
  schema->fill_table = isis2is_fill;
  return 0;
}
