"""The Textual dashboard. Reads the daemon's state (ledger, control socket); never calls RunPod itself."""
