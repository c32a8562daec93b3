'use strict';
throw new Error('node-aead-crypto is not used on Node >= 10: node-dtls-client uses Node crypto');
