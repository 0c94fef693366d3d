//! Serving: HTTP and gRPC on already-bound listeners, with graceful shutdown.
