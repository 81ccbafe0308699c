"""Run metrics to CloudWatch and alerts to SNS / Slack: plain functions, registered as alert sinks."""
