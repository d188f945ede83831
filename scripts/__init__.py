"""Scripts run beside the platform: the image health check, `make compose-test`."""
