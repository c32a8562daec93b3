import { OptionNumber } from '../../coap/codes';
import type { CoapMessage } from '../../coap/message';
import { uintOption } from '../../coap/options';

export function contentFormatOf(response: CoapMessage): number | undefined {
  return uintOption(response.options, OptionNumber.ContentFormat);
}
