//! specgen: the flatrpc compiler.
