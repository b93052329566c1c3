//! MoE collectives as closed-loop flit traffic. (Being written.)
