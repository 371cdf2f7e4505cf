"""Kafka plumbing every service uses: who a client is (security), what each service may do (acls),
cluster readiness and topic provisioning."""
