// The NATS JetStream and HTTP forward sinks live here (issue 5).
