/* Placeholder until the block layer lands; keeps the library non-empty. */
int vmm_block_stub_unused;
