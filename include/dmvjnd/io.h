/* File formats: safetensors (weights, checkpoints), CIFAR-10 binary, PNG. */
#ifndef DMVJND_IO_H
#define DMVJND_IO_H

#include "dmvjnd/safetensors.h"
#include "dmvjnd/cifar10.h"
#include "dmvjnd/image.h"
#include "dmvjnd/fileio.h"

#endif
