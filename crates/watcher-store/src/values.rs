//! The values the store binds to statements and reads from rows, the same
//! on every database (`sql.rs` runs them; `mariadb.rs` binds
//! them for MariaDB).

use crate::StoreError;
use std::sync::Arc;
use uuid::Uuid;

/// A value bound to a statement or read from a row. Booleans are integers
/// (0/1) on both databases; timestamps are integers (microseconds).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Text(String),
}

pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}
impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}
impl ToValue for usize {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}
impl ToValue for bool {
    fn to_value(&self) -> Value {
        Value::Int(*self as i64)
    }
}
impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}
impl ToValue for Uuid {
    fn to_value(&self) -> Value {
        Value::Text(self.to_string())
    }
}
/// States, kinds and actors are stored as their upstream names, bound like
/// any other value (never spelled in the SQL text).
macro_rules! text_value {
    ($($t:ty),+) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Text(self.as_str().to_string())
            }
        }
    )+};
}
text_value!(
    watcher_core::ActionPlanState,
    watcher_core::ActionState,
    watcher_core::AuditState,
    watcher_core::AuditType,
    watcher_core::EntityState,
    watcher_core::Entity,
    watcher_core::Actor
);

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}
impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

/// The arguments of a statement: `args![a, b, c]`, of any types with [`ToValue`].
macro_rules! args {
    ($($e:expr),* $(,)?) => {
        [$($crate::values::ToValue::to_value(&$e)),*]
    };
}
pub(crate) use args;

/// `?, ?, ?`: `n` placeholders for an `IN (..)` list, numbered in order.
pub(crate) fn marks(n: usize) -> String {
    vec!["?"; n].join(",")
}

/// `?first, ?first+1, ..`: `n` numbered placeholders for a list that follows
/// fixed, numbered arguments (a bare `?` would not know where to start).
pub(crate) fn numbered_marks(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What a statement's arguments may come as: `args![..]`, an array of
/// values of one type, or a vector built at run time.
pub(crate) trait IntoArgs {
    fn into_args(self) -> Vec<Value>;
}
impl<T: ToValue, const N: usize> IntoArgs for [T; N] {
    fn into_args(self) -> Vec<Value> {
        self.iter().map(ToValue::to_value).collect()
    }
}
impl IntoArgs for Vec<Value> {
    fn into_args(self) -> Vec<Value> {
        self
    }
}
impl IntoArgs for () {
    fn into_args(self) -> Vec<Value> {
        Vec::new()
    }
}

/// A row read from either database: its values, and the names of its
/// columns (shared by every row of one query). Records are read by column
/// name, so a SELECT can gain or reorder columns without shifting them.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    columns: Arc<[String]>,
    values: Vec<Value>,
}

/// How a row's column is named: by its name (records), or by its position
/// (one-column scalar queries).
pub(crate) trait Column: Copy + std::fmt::Display {
    fn position(self, columns: &[String]) -> Option<usize>;
}
impl Column for usize {
    fn position(self, columns: &[String]) -> Option<usize> {
        (self < columns.len()).then_some(self)
    }
}
impl Column for &str {
    fn position(self, columns: &[String]) -> Option<usize> {
        columns.iter().position(|c| c == self)
    }
}

pub(crate) trait FromValue: Sized {
    fn from_value(v: &Value) -> Option<Self>;
}
impl FromValue for i64 {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}
impl FromValue for bool {
    fn from_value(v: &Value) -> Option<Self> {
        i64::from_value(v).map(|i| i != 0)
    }
}
impl FromValue for String {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Text(s) => Some(s.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    fn from_value(v: &Value) -> Option<Self> {
        match v {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl Row {
    pub(crate) fn new(columns: Arc<[String]>, values: Vec<Value>) -> Row {
        Row { columns, values }
    }

    pub fn get<T: FromValue>(&self, c: impl Column) -> Result<T, StoreError> {
        let v = c
            .position(&self.columns)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::Corrupt(format!("a row has no column {c}")))?;
        T::from_value(v).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "column {c} holds {v:?}, not a {}",
                std::any::type_name::<T>()
            ))
        })
    }

    pub fn parsed<T: std::str::FromStr>(&self, c: impl Column) -> Result<T, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        let s: String = self.get(c)?;
        s.parse()
            .map_err(|e: T::Err| StoreError::Corrupt(format!("column {c} ({s:?}): {e}")))
    }

    pub fn opt_parsed<T: std::str::FromStr>(&self, c: impl Column) -> Result<Option<T>, StoreError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get::<Option<String>>(c)? {
            None => Ok(None),
            Some(_) => self.parsed(c).map(Some),
        }
    }

    pub fn uuid(&self, c: impl Column) -> Result<Uuid, StoreError> {
        self.parsed(c)
    }

    pub fn opt_uuid(&self, c: impl Column) -> Result<Option<Uuid>, StoreError> {
        self.opt_parsed(c)
    }

    pub fn time(&self, c: impl Column) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
        Ok(super::from_micros(self.get(c)?))
    }

    pub fn opt_time(
        &self,
        c: impl Column,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(self.get::<Option<i64>>(c)?.map(super::from_micros))
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self, c: impl Column) -> Result<T, StoreError> {
        let s: String = self.get(c)?;
        Ok(serde_json::from_str(&s)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_convert_and_refuse_the_wrong_type() {
        let row = Row {
            columns: ["id", "deleted_at", "state"].map(String::from).into(),
            values: vec![Value::Int(1), Value::Null, Value::Text("ONGOING".into())],
        };
        assert!(row.get::<bool>(0).unwrap());
        assert_eq!(row.get::<Option<i64>>("deleted_at").unwrap(), None);
        assert_eq!(
            row.parsed::<watcher_core::ActionPlanState>("state")
                .unwrap(),
            watcher_core::ActionPlanState::Ongoing
        );
        assert!(matches!(
            row.get::<String>("id"),
            Err(StoreError::Corrupt(_))
        ));
        let err = row.get::<i64>("no_such_column").unwrap_err();
        assert!(
            err.to_string().contains("no column no_such_column"),
            "{err}"
        );
    }
}
