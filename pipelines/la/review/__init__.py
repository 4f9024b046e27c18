"""Human verification of la candidates in Label Studio (la4vla.txt Appendix 7.6).

push:   candidates → one Label Studio project per run (the units' clips, proposals as
        predictions), or Label Studio-importable JSON when no server is configured;
pull:   annotations → per-segment verdicts, Krippendorff's alpha, retention;
apply:  verdicts → a new manifest generation of verified shards beside the candidates;
flow:   the review flow (`make review`). The client and server live in pipelines.labelstudio.
"""
