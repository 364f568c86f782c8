//! The query language on BSON documents: filters, update operators, projection, sort, aggregation.
