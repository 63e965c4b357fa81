import { Phone } from "../caller/phone";
import { startStack } from "./stack";

const stack = await startStack({ direct: true, logLevel: "debug" });
try {
  const phone = await Phone.open({
    proxy: stack.sip.proxy,
    target: stack.sip.target,
    host: stack.sip.callerHost,
  });
  await phone.dial({ timeoutMs: 3000 }).catch((e) => console.log(String(e)));
  await phone.close();
} finally {
  for (const l of stack.bridge.logs().slice(-14)) console.log(JSON.stringify(l).slice(0, 400));
  await stack.close();
}
