"""Benchmarks: bare tuned Scrapy vs Clearance on the same local site (see bench/crawl.py)."""
