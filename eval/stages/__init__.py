"""The main job's stages, one module each (registered in `eval.reproduce`).

environment  devices and software versions
dataset      SynthAerial preview
backbones    classifier training (small CNN, ResNet-18)
probes       Net2Vec and TCAV probes
loce         per-instance LoCEs and their distribution analyses
hashing      DUCH and CHNR under caption noise
common       shared helpers (backbone paths)
"""
