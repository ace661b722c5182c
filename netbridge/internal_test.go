package netbridge
