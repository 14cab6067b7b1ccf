"""Background jobs on APScheduler: delivery polling and reconcile, the Slack relay."""
