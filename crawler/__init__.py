"""Clearance crawler: the Scrapy side (consent gate, robots, opt-out signals, images)."""
