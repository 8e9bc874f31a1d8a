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
// The columns, from the one list (isis2is_columns.h, written by build.rs).
#define GCS_TYPE_TEXT(width) Varchar(width)
#define GCS_TYPE_UINT(width) ULong()
#define GCS_FIELD(name, kind, width, nullable) \
  Column(name, GCS_TYPE_##kind(width), (nullable) ? NULLABLE : NOT_NULL),
static ST_FIELD_INFO isis2is_fields[] = {GCS_ISIS2IS_COLUMNS(GCS_FIELD) CEnd()};
static ST_FIELD_INFO isis2is_history_fields[] = {GCS_ISIS2IS_HISTORY_COLUMNS(GCS_FIELD) CEnd()};
#undef GCS_FIELD
}  // namespace Show

namespace {

#define GCS_IS_TEXT_TEXT true
#define GCS_IS_TEXT_UINT false
#define GCS_IS_TEXT(name, kind, width, nullable) GCS_IS_TEXT_##kind,
// Whether each column holds text (else a number), in table order.
constexpr bool is_text[] = {GCS_ISIS2IS_COLUMNS(GCS_IS_TEXT)};
constexpr bool history_is_text[] = {GCS_ISIS2IS_HISTORY_COLUMNS(GCS_IS_TEXT)};
#undef GCS_IS_TEXT
static_assert(sizeof(is_text) == GCS_ISIS2IS_COLUMN_COUNT, "one kind per column");
static_assert(sizeof(history_is_text) == GCS_ISIS2IS_HISTORY_COLUMN_COUNT, "one kind per column");

static_assert(sizeof(gcs_value) == GCS_SIZEOF_GCS_VALUE, "gcs_value size");
static_assert(offsetof(gcs_row, ascii) == GCS_SIZEOF_GCS_VALUE * GCS_ISIS2IS_COLUMN_COUNT,
              "gcs_row layout");

struct FillContext {
  THD *thd;
  TABLE *table;
};

// Stores a text value. ASCII goes straight into the VARCHAR's record bytes (length prefix, then
// the bytes, cut at the column's length in characters), which is what Field::store would write
// after checking the characters; that check was nearly half of the fill function's cost, and
// ASCII cannot fail it. Anything else goes through Field::store, which checks and converts.
void store_text(Field *f, const gcs_value &text, bool ascii) {
  if (!ascii || f->real_type() != MYSQL_TYPE_VARCHAR) {
    f->store(text.ptr, text.n, system_charset_info);
    return;
  }
  Field_varstring *v = static_cast<Field_varstring *>(f);
  size_t len = std::min<size_t>(text.n, f->char_length());
  if (v->length_bytes == 1)
    f->ptr[0] = static_cast<uchar>(len);
  else
    int2store(f->ptr, static_cast<uint16>(len));
  memcpy(f->ptr + v->length_bytes, text.ptr, len);
}

// Sets the `count` fields of the current record from `cols` and stores the record. Every
// column is set on every row, so the record is reset once per fill, not once per row (the reset
// copies the whole record, about 2.7 KB).
int store_row(FillContext *fill, const gcs_value *cols, const bool *text, int count, bool ascii) {
  TABLE *table = fill->table;
  for (int i = 0; i < count; i++) {
    Field *f = table->field[i];
    const gcs_value &value = cols[i];
    if (value.is_null) {
      f->set_null();
      continue;
    }
    f->set_notnull();
    if (text[i])
      store_text(f, value, ascii);
    else
      f->store(static_cast<longlong>(value.n), true);
  }
  return schema_table_store_record(fill->thd, table) ? 1 : 0;
}

extern "C" int emit_row(void *ctx, const gcs_row *row) {
  return store_row(static_cast<FillContext *>(ctx), row->cols, is_text, GCS_ISIS2IS_COLUMN_COUNT,
                   row->ascii != 0);
}

// History rows are few and may hold any text: every text goes through Field::store.
extern "C" int emit_history_row(void *ctx, const gcs_value *cols) {
  return store_row(static_cast<FillContext *>(ctx), cols, history_is_text,
                   GCS_ISIS2IS_HISTORY_COLUMN_COUNT, false);
}

// Readable by every user, like INFORMATION_SCHEMA.ENGINES: the point of the table is that any
// client (a driver, a load balancer) learns the cluster's shape with plain SQL, and it shows
// nothing a client connected to the cluster cannot already reach.
int isis2is_fill(THD *thd, TABLE_LIST *tables, COND *) {
  FillContext ctx{thd, tables->table};
  restore_record(ctx.table, s->default_values);
  return gcs_isis2is_rows(&ctx, emit_row);
}

// Readable by every user, as ISIS2IS: the same cluster, told over time.
int isis2is_history_fill(THD *thd, TABLE_LIST *tables, COND *) {
  FillContext ctx{thd, tables->table};
  restore_record(ctx.table, s->default_values);
  return gcs_isis2is_history_rows(&ctx, emit_history_row);
}

}  // namespace

extern "C" int gcs_shim_isis2is_init(void *p) {
  ST_SCHEMA_TABLE *schema = static_cast<ST_SCHEMA_TABLE *>(p);
  schema->fields_info = Show::isis2is_fields;
  schema->fill_table = isis2is_fill;
  return 0;
}

extern "C" int gcs_shim_isis2is_history_init(void *p) {
  ST_SCHEMA_TABLE *schema = static_cast<ST_SCHEMA_TABLE *>(p);
  schema->fields_info = Show::isis2is_history_fields;
  schema->fill_table = isis2is_history_fill;
  return 0;
}
