"""Offline evaluation: prediction records (JSONL), video and bag runs, metrics, reports and plots."""
