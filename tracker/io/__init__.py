"""What goes in and out: video sources (``source``), prompts (``prompts``), bounded image and RLE
decoding (``images``), sinks (``sinks``) and the annotation drawn on frames (``annotation``)."""
