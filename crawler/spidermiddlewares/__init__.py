"""Spider middlewares: what the crawl records about the requests its callbacks make."""
