#include "crypto/crypto.h"
