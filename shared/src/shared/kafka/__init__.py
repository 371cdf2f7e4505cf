"""Kafka plumbing every service uses: cluster readiness and topic provisioning."""
