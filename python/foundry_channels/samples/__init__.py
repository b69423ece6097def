"""Sample workloads written straight against the channel API (no workflow file):

    denoise   streaming previews from an iterative device loop (samples/denoise.py)
"""
