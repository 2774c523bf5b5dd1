"""onesait Platform / Sofia2 compatibility: SSAP messages, digital-client sessions and the SSAP processor
that the `ssap-*` nodes share."""
