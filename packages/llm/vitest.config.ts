import { packageProject } from "../../tools/vitest-project.ts";

export default packageProject("llm", ["core/parity", "core", "text"]);
