"""Rights evidence: what an image's bytes and its page say about its licence and its author.

``embedded`` reads XMP, IPTC IIM and C2PA creative-work assertions; ``markup`` reads schema.org
JSON-LD / microdata / RDFa (with extruct) and ccREL ``rel="license"`` markup; ``resolve`` applies
precedence and conflict rules and writes the credit line. Every piece found is kept as
:class:`~crawler.rights.evidence.Evidence`, and all of it lands in the row's ``licence_evidence``.
"""
