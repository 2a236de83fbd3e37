"""``avatarcast avatars prepare``: a twin pack from the host's own recording or one photo.

``faces`` finds one face and its 68 landmarks per frame (dlib's HOG detector and Debian's
``libdlib-data`` shape predictor), ``align`` aligns the recorded speech with the script
(espeak-ng phonemes, MFCCs, dynamic time warping), ``loop`` picks a silent idle loop and a
loop point without a visible jump, ``mouth`` builds the mask and cuts a patch per viseme (or,
for a photo, warps one per viseme with ``warp``), and ``build`` writes the pack.
"""
