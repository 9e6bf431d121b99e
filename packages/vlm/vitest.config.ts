import { packageProject } from "../../tools/vitest-project.ts";

export default packageProject("vlm", ["core/parity", "core", "text", "vit", "llm/parity", "llm"]);
