//! The state in PostgreSQL (being written).

use crate::store::{History, Instance, PgState, Rows, Store, StoreError};

fn not_yet(pg: &PgState) -> StoreError {
    StoreError::Open {
        path: pg.to_string(),
        message: "PostgreSQL state is not built yet".into(),
    }
}

pub fn open(pg: &PgState, _instance: &Instance) -> Result<Box<dyn Store>, StoreError> {
    Err(not_yet(pg))
}

pub fn open_history(pg: &PgState) -> Result<Box<dyn History>, StoreError> {
    Err(not_yet(pg))
}

pub fn open_rows(pg: &PgState) -> Result<Box<dyn Rows>, StoreError> {
    Err(not_yet(pg))
}
