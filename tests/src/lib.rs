//! ringwire-tests: end-to-end tests that run ringwire's real binaries in
//! network namespaces (see `tests/`). The library part holds the helpers.
