/* placeholder */ typedef int sr_gateway_placeholder;
