//! The column lists of the plugin's INFORMATION_SCHEMA tables: each is written once, as a
//! `columns!` invocation, and build.rs writes the shim's field lists from it.

/// What a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `VARCHAR(width)`, in characters.
    Text { width: usize },
    /// An unsigned integer.
    Unsigned,
}

/// Declares a table's column enum and everything derived from its list (names, kinds,
/// nullability, `ALL` in table order), so each list is written once.
macro_rules! columns {
    ($(#[$tdoc:meta])* $table:ident; $($(#[$doc:meta])* $column:ident => $name:literal, $kind:expr, $nullable:literal;)+) => {
        $(#[$tdoc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $table {
            $($(#[$doc])* $column),+
        }

        impl $table {
            /// Every column, in table order.
            pub const ALL: [$table; [$($name),+].len()] = [$($table::$column),+];

            /// The SQL name of the column.
            pub const fn name(self) -> &'static str {
                match self {
                    $($table::$column => $name),+
                }
            }

            pub const fn kind(self) -> Kind {
                match self {
                    $($table::$column => $kind),+
                }
            }

            pub const fn nullable(self) -> bool {
                match self {
                    $($table::$column => $nullable),+
                }
            }
        }
    };
}
